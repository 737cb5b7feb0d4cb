import t from 'tap';
import { VinTable, parseCidr, ipToInt } from '../src/vin.ts';
import { checkAgentConfig } from '../src/config.ts';

t.test('a name gets one VIN inside the range, stable across calls', async (t) => {
  const v = new VinTable('198.19.224.0/20');
  const a = v.assign('Intra1.corp.example.', 30, 0);
  t.ok(v.contains(a.vin));
  t.not(a.vin, '198.19.224.0', 'never the network address');
  t.not(a.vin, '198.19.239.255', 'never the broadcast address');
  t.equal(v.assign('intra1.corp.example', 30, 1000).vin, a.vin);
  t.equal(v.byAddress(a.vin)?.name, 'intra1.corp.example');
});

t.test('the same name gets the same VIN in another agent run (hash placement)', async (t) => {
  t.equal(
    new VinTable('198.19.224.0/20').assign('intra2.corp.example', 30, 0).vin,
    new VinTable('198.19.224.0/20').assign('intra2.corp.example', 30, 0).vin,
  );
});

t.test('collisions probe to the next free slot; exhaustion is a clear error', async (t) => {
  const v = new VinTable('10.9.9.0/30'); // two usable slots
  const a = v.assign('a.example', 30, 0);
  const b = v.assign('b.example', 30, 0);
  t.not(a.vin, b.vin);
  t.throws(() => v.assign('c.example', 30, 0), /VIN range exhausted/);
});

t.test('a later answer extends the entry, an earlier one never shortens it', async (t) => {
  const v = new VinTable('198.19.224.0/20');
  v.assign('x.example', 60, 0);
  t.equal(v.assign('x.example', 10, 1000).expires, 60_000);
  t.equal(v.assign('x.example', 100, 1000).expires, 101_000);
});

t.test('restore keeps saved VINs and ignores ones outside the range', async (t) => {
  const v = new VinTable('198.19.224.0/20');
  v.restore([
    { name: 'a.example', vin: '198.19.230.7', expires: 5 },
    { name: 'b.example', vin: '10.0.0.1', expires: 5 },
  ]);
  t.equal(v.byHostName('a.example')?.vin, '198.19.230.7');
  t.equal(v.byHostName('b.example'), undefined);
});

t.test('CIDR parsing', async (t) => {
  t.same(parseCidr('10.1.2.3/8'), { first: ipToInt('10.0.0.0'), last: ipToInt('10.255.255.255'), prefix: 8 });
  t.throws(() => parseCidr('10.0.0.0/33'));
});

t.test('config: defaults, and a VIN range overlapping 100.64.0.0/10 is refused', async (t) => {
  const base = {
    gateway: { address: '203.0.113.1' },
    zones: ['corp.example'],
    ldap: { url: 'ldaps://203.0.113.1:636', caFile: '/etc/gsra/ca.pem', baseDn: 'dc=corp,dc=example' },
  };
  const c = checkAgentConfig(structuredClone(base));
  t.equal(c.vinRange, '198.19.224.0/20');
  t.equal(c.gateway.controlPort, 4430);
  t.throws(
    () => checkAgentConfig({ ...structuredClone(base), vinRange: '100.100.0.0/16' }),
    /vinRange: expected no overlap with 100\.64\.0\.0\/10/,
  );
  t.throws(
    () => checkAgentConfig({ ...structuredClone(base), zones: [] }),
    /zones: expected at least 1 items/,
  );
});

t.test(
  'a full table gives a new name the least recently used VIN that expired long ago and that no flow uses',
  async (t) => {
    const T = 1_790_000_000_000;
    const v = new VinTable('198.19.224.0/29', { graceMs: 1000 }); // 6 usable addresses
    for (let i = 0; i < 6; i++) v.assign(`n${i}.corp.example`, 60, T + i);
    const live = v.byHostName('n0.corp.example')!.vin;
    v.touch(v.byHostName('n1.corp.example')!.vin); // n1 just got a flow: most recently used
    t.throws(
      () => v.assign('new.corp.example', 60, T + 10_000),
      /VIN range exhausted/,
      'nothing expired yet',
    );
    const later = T + 62_000; // every answer expired more than the grace ago
    const e = v.assign('new.corp.example', 60, later, (vin) => vin === live);
    t.equal(v.byHostName('n0.corp.example')?.vin, live, 'the VIN a flow uses is kept');
    t.equal(v.byHostName('n2.corp.example'), undefined, 'the least recently used other one went');
    t.equal(v.byAddress(e.vin)?.name, 'new.corp.example');
    t.equal(v.evicted, 1);
    t.ok(v.byHostName('n1.corp.example'), 'the touched one stays');
    t.throws(
      () => v.assign('x.corp.example', 60, later, () => true),
      /in use or handed out/,
      'all in use: refused, none reclaimed',
    );
  },
);
