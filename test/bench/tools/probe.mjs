// The benchmark's client, run with node inside a lab namespace. Prints one JSON object.
//   rr <server|-> <target> <port> <count|Ns>  TCP request/response loop on one connection (32-byte
//                                       request, echoed), count times or for N seconds: {samples_ms, bytes}
//   dns <server> <count> <name>...      A queries over UDP, one at a time, names cycled, after one
//                                       untimed query for the first name:
//                                       {samples_ms, answers: {name: address}}
//   connect <server|-> <port> <warm|-> <target>... one connection per target, one after the other,
//                                       after one untimed connection to <warm> (JIT and sockets warm).
//                                       A target that is a name is looked up first with an A query to
//                                       <server>: {conns: [{lookup_ms, connect_ms, first_byte_ms}], bytes}
//   concurrent <server|-> <target> <port> <n>  n connections opened at once, each sends 32 bytes, reads
//                                       them back and closes: {total_ms, samples_ms, ok, errors}
// rr and concurrent look a target that is a name up once (with <server>), untimed.
// Times are process.hrtime deltas in ms. Every operation has a 10 s timeout; a failure is an error
// exit with a message (the bench reports it), never a silent gap.
import { createConnection } from 'node:net';
import { createSocket } from 'node:dgram';

const TIMEOUT_MS = 10_000;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const REQ = Buffer.alloc(32, 0x61);

function fail(msg) {
  console.error(`probe: ${msg}`);
  process.exit(1);
}

function connect(addr, port) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const s = createConnection({ host: addr, port, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to ${addr}:${port} timed out`));
    }, TIMEOUT_MS);
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once('connect', () => {
      clearTimeout(timer);
      resolve({ s, t0, connectMs: now() - t0 });
    });
  });
}

/** Resolves with the next `n` bytes the socket delivers. */
function read(s, n) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let have = 0;
    const timer = setTimeout(() => done(new Error(`read of ${n} bytes timed out`)), TIMEOUT_MS);
    const onData = (d) => {
      chunks.push(d);
      have += d.length;
      if (have >= n) done(null);
    };
    const onEnd = () => done(new Error(`connection closed after ${have} of ${n} bytes`));
    const done = (err) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('error', done);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('error', done);
  });
}

async function resolveOnce(server, target) {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(target)) return target;
  if (server === '-') throw new Error(`${target} is a name and no DNS server was given`);
  const r = makeResolver(server);
  try {
    return (await r.lookup(target)).address;
  } finally {
    r.close();
  }
}

async function rr(server, target, port, count) {
  const addr = await resolveOnce(server, target);
  const { s } = await connect(addr, port);
  const samples = [];
  const until = /^\d+(\.\d+)?s$/.test(count) ? now() + 1000 * parseFloat(count) : Infinity;
  const n = until === Infinity ? Number(count) : Infinity;
  for (let i = 0; i < n && now() < until; i++) {
    const t = now();
    s.write(REQ);
    await read(s, REQ.length);
    samples.push(now() - t);
  }
  s.destroy();
  return { samples_ms: samples, bytes: 2 * REQ.length * samples.length };
}

// --- DNS: a standard query for A, and the first A record of the answer.
let dnsId = 1;
function query(name) {
  const labels = name.split('.').filter(Boolean);
  const q = Buffer.alloc(12 + labels.reduce((n, l) => n + l.length + 1, 1) + 4);
  q.writeUInt16BE(dnsId++ & 0xffff, 0);
  q.writeUInt16BE(0x0100, 2); // RD
  q.writeUInt16BE(1, 4);
  let o = 12;
  for (const l of labels) {
    q[o++] = l.length;
    o += q.write(l, o, 'ascii');
  }
  q[o++] = 0;
  q.writeUInt16BE(1, o); // A
  q.writeUInt16BE(1, o + 2); // IN
  return q;
}
function firstA(msg) {
  const an = msg.readUInt16BE(6);
  const rcode = msg[3] & 15;
  if (rcode !== 0) throw new Error(`rcode ${rcode}`);
  let o = 12;
  const skipName = () => {
    while (o < msg.length) {
      const l = msg[o];
      if (l === 0) return void o++;
      if ((l & 0xc0) === 0xc0) return void (o += 2);
      o += l + 1;
    }
  };
  skipName();
  o += 4;
  for (let i = 0; i < an; i++) {
    skipName();
    const type = msg.readUInt16BE(o);
    const len = msg.readUInt16BE(o + 8);
    o += 10;
    if (type === 1 && len === 4) return `${msg[o]}.${msg[o + 1]}.${msg[o + 2]}.${msg[o + 3]}`;
    o += len;
  }
  throw new Error('no A record');
}

function makeResolver(server) {
  const sock = createSocket('udp4');
  const waiting = new Map();
  sock.on('message', (msg) => {
    const w = waiting.get(msg.readUInt16BE(0));
    if (w) w(msg);
  });
  return {
    lookup(name) {
      return new Promise((resolve, reject) => {
        const q = query(name);
        const id = q.readUInt16BE(0);
        const t0 = now();
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`lookup of ${name} timed out`));
        }, TIMEOUT_MS);
        waiting.set(id, (msg) => {
          const ms = now() - t0;
          clearTimeout(timer);
          waiting.delete(id);
          try {
            resolve({ address: firstA(msg), ms });
          } catch (e) {
            reject(new Error(`lookup of ${name}: ${e.message}`));
          }
        });
        sock.send(q, 53, server);
      });
    },
    close: () => sock.close(),
  };
}

async function dns(server, count, names) {
  const r = makeResolver(server);
  const samples = [];
  const answers = {};
  await r.lookup(names[0]);
  for (let i = 0; i < count; i++) {
    const name = names[i % names.length];
    const { address, ms } = await r.lookup(name);
    samples.push(ms);
    answers[name] = address;
  }
  r.close();
  return { samples_ms: samples, answers };
}

async function connectMany(server, port, warm, targets) {
  const r = server === '-' ? null : makeResolver(server);
  const conns = [];
  let bytes = 0;
  if (warm !== '-') {
    const { s } = await connect(await resolveOnce(server, warm), port);
    await read(s, 1);
    s.destroy();
  }
  for (const target of targets) {
    let addr = target;
    let lookupMs = null;
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(target)) {
      if (!r) throw new Error(`${target} is a name and no DNS server was given`);
      const a = await r.lookup(target);
      addr = a.address;
      lookupMs = a.ms;
    }
    const { s, t0, connectMs } = await connect(addr, port);
    await read(s, 1);
    const firstByteMs = now() - t0;
    bytes += 1;
    s.destroy();
    conns.push({ target, addr, lookup_ms: lookupMs, connect_ms: connectMs, first_byte_ms: firstByteMs });
  }
  r?.close();
  return { conns, bytes };
}

async function concurrent(server, target, port, n) {
  const addr = await resolveOnce(server, target);
  const t0 = now();
  const one = async () => {
    const { s, t0: c0 } = await connect(addr, port);
    s.write(REQ);
    await read(s, REQ.length);
    s.end();
    s.destroy();
    return now() - c0;
  };
  const res = await Promise.allSettled(Array.from({ length: n }, one));
  const samples = res.filter((x) => x.status === 'fulfilled').map((x) => x.value);
  const errors = res.filter((x) => x.status === 'rejected').map((x) => String(x.reason?.message ?? x.reason));
  return {
    total_ms: now() - t0,
    samples_ms: samples,
    ok: samples.length,
    errors: [...new Set(errors)].slice(0, 5),
    error_count: errors.length,
    bytes: 2 * REQ.length * samples.length,
  };
}

const [mode, ...a] = process.argv.slice(2);
const run = {
  rr: () => rr(a[0], a[1], Number(a[2]), a[3]),
  dns: () => dns(a[0], Number(a[1]), a.slice(2)),
  connect: () => connectMany(a[0], Number(a[1]), a[2], a.slice(3)),
  concurrent: () => concurrent(a[0], a[1], Number(a[2]), Number(a[3])),
}[mode];
if (!run) fail(`unknown mode ${mode}`);
run().then(
  // Exit once stdout is flushed: a pipe is written asynchronously, and exit() would cut it.
  (r) => process.stdout.write(JSON.stringify(r) + '\n', () => process.exit(0)),
  (e) => fail(e?.message ?? String(e)),
);
