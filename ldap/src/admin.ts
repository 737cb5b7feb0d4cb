// Directory administration for IT (behind the gsra-admin CLI): groups, members, hosts, key
// rotation with a grace period, user secrets, and the two questions IT asks most
// ("who can reach this host?", "what can this user reach?"). Works on OpenLDAP and AD.
import { randomBytes } from 'node:crypto';
import { Attribute, Change } from 'ldapts';
import { DirectoryClient } from './client.ts';
import { escapeDnValue, type GsraGroup, type GsraHost, type DirectoryUser } from './entries.ts';
import { DirectoryError, DirectoryProtocolError, NoSuchGroupError, AlreadyExistsError } from './errors.ts';
import { ATTR, KEY_BYTES, checkHost, formatHost, parseHost, toGeneralizedTime } from './schema.ts';

export interface RotateResult {
  group: string;
  version: number;
  rotatedAt: Date;
  /** The key that stays valid during the grace period (absent when there was no key before). */
  previous?: { version: number; notAfter: Date };
}

export interface ReachEntry {
  group: string;
  groupDn: string;
  hosts: GsraHost[];
  members: DirectoryUser[];
}

export interface WhatCanResult {
  user: DirectoryUser;
  groups: { name: string; dn: string; hosts: GsraHost[] }[];
}

function change(operation: 'add' | 'delete' | 'replace', type: string, values: (string | Buffer)[]): Change {
  const vals = values.every((v) => Buffer.isBuffer(v)) ? (values as Buffer[]) : values.map((v) => String(v));
  return new Change({ operation, modification: new Attribute({ type, values: vals }) });
}

/** A DirectoryClient with write operations. Bind it with bindService(adminDn, password). */
export class DirectoryAdmin extends DirectoryClient {
  private async modify(dn: string, changes: Change[], what: string): Promise<void> {
    await this.op(what, (c) => c.modify(dn, changes));
  }

  /** The group entry, or NoSuchGroupError. */
  async requireGroup(name: string): Promise<GsraGroup> {
    const g = await this.group(name);
    if (!g) throw new NoSuchGroupError(this.url, name);
    return g;
  }

  /** Create a GSRA group (with a fresh key, version 1, unless withKey is false). */
  async createGroup(
    name: string,
    opts: { withKey?: boolean; description?: string } = {},
  ): Promise<GsraGroup> {
    if (!/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/.test(name)) {
      throw new DirectoryError(
        'invalid-argument',
        `invalid group name "${name}": use letters, digits, space, '.', '_' or '-' (at most 63)`,
      );
    }
    if (await this.group(name)) throw new AlreadyExistsError(this.url, `GSRA group "${name}"`);
    const now = new Date();
    const keyAttrs: Record<string, string[] | Buffer[]> =
      opts.withKey === false
        ? {}
        : {
            [ATTR.key]: [randomBytes(KEY_BYTES)],
            [ATTR.keyVersion]: ['1'],
            [ATTR.keyRotatedAt]: [toGeneralizedTime(now)],
          };
    const desc = opts.description ? { description: [opts.description] } : {};
    if (this.flavor === 'openldap') {
      const dn = `cn=${escapeDnValue(name)},${this.groupsDn}`;
      const attrs = [
        new Attribute({ type: 'objectClass', values: ['groupOfNames', ATTR.groupClass] }),
        new Attribute({ type: 'cn', values: [name] }),
        // groupOfNames needs a member; the empty DN is the usual placeholder for "nobody yet".
        new Attribute({ type: 'member', values: [''] }),
        ...Object.entries({ ...keyAttrs, ...desc }).map(([type, values]) => new Attribute({ type, values })),
      ];
      await this.op(`creating group ${name}`, (c) => c.add(dn, attrs));
    } else {
      const dn = `CN=${escapeDnValue(name)},${this.groupsDn}`;
      await this.op(`creating group ${name}`, (c) =>
        c.add(dn, {
          objectClass: ['top', 'group'],
          cn: name,
          sAMAccountName: name,
          groupType: String(-2147483646), // global security group: its SID is in members' tokens
          ...(opts.description ? { description: opts.description } : {}),
        }),
      );
      // Samba/AD: add the auxiliary class first, then its attributes (one modify each).
      await this.modify(
        dn,
        [change('add', 'objectClass', [ATTR.groupClass])],
        `adding ${ATTR.groupClass} to ${name}`,
      );
      if (opts.withKey !== false) {
        await this.modify(
          dn,
          Object.entries(keyAttrs).map(([type, values]) => change('replace', type, values)),
          `setting the key of ${name}`,
        );
      }
    }
    return this.requireGroup(name);
  }

  async deleteGroup(name: string): Promise<void> {
    const g = await this.requireGroup(name);
    await this.op(`deleting group ${name}`, (c) => c.del(g.dn));
  }

  /** Resolve a user id (uid, UPN, DOMAIN\name or DN) to its entry. */
  async user(id: string): Promise<DirectoryUser> {
    return this.findUser(id);
  }

  async addUser(groupName: string, userId: string): Promise<DirectoryUser> {
    const g = await this.requireGroup(groupName);
    const u = await this.findUser(userId);
    const direct = await this.directMembers(g.dn);
    if (direct.some((m) => m.toLowerCase() === u.dn.toLowerCase())) {
      throw new AlreadyExistsError(this.url, `${u.uid ?? u.dn} as a member of ${g.name}`);
    }
    const changes = [change('add', 'member', [u.dn])];
    if (this.flavor === 'openldap' && direct.includes('')) changes.push(change('delete', 'member', ['']));
    await this.modify(g.dn, changes, `adding ${u.dn} to ${g.name}`);
    return u;
  }

  async removeUser(groupName: string, userId: string): Promise<DirectoryUser> {
    const g = await this.requireGroup(groupName);
    const u = await this.findUser(userId);
    const direct = await this.directMembers(g.dn);
    const present = direct.find((m) => m.toLowerCase() === u.dn.toLowerCase());
    if (present === undefined) {
      throw new DirectoryError('invalid-argument', `${u.uid ?? u.dn} is not a direct member of ${g.name}`, {
        url: this.url,
      });
    }
    const changes = [change('delete', 'member', [present])];
    const rest = direct.filter((m) => m !== present && m !== '');
    if (this.flavor === 'openldap' && rest.length === 0) changes.unshift(change('add', 'member', ['']));
    await this.modify(g.dn, changes, `removing ${u.dn} from ${g.name}`);
    return u;
  }

  private async directMembers(groupDn: string): Promise<string[]> {
    const [e] = await this.searchAll(
      groupDn,
      { scope: 'base', filter: '(objectClass=*)', attributes: ['member'], paged: false },
      `reading the members of ${groupDn}`,
    );
    if (!e) return [];
    const v = e.member;
    return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(String);
  }

  async addHost(groupName: string, host: GsraHost): Promise<GsraHost> {
    const problem = checkHost(host.name, host.address);
    if (problem) throw new DirectoryError('invalid-argument', problem);
    const g = await this.requireGroup(groupName);
    const h = { name: host.name.toLowerCase().replace(/\.$/, ''), address: host.address };
    if (g.hosts.some((x) => x.name === h.name && x.address === h.address)) {
      throw new AlreadyExistsError(this.url, `host ${h.name} (${h.address}) in group ${g.name}`);
    }
    await this.modify(
      g.dn,
      [change('add', ATTR.host, [formatHost(h)])],
      `adding host ${h.name} to ${g.name}`,
    );
    return h;
  }

  /** Remove the host(s) of the group whose name or address is `nameOrAddress`. */
  async removeHost(groupName: string, nameOrAddress: string): Promise<GsraHost[]> {
    const g = await this.requireGroup(groupName);
    const [e] = await this.searchAll(
      g.dn,
      { scope: 'base', filter: '(objectClass=*)', attributes: [ATTR.host], paged: false },
      `reading the hosts of ${g.name}`,
    );
    const raw = e ? (Array.isArray(e[ATTR.host]) ? e[ATTR.host] : [e[ATTR.host]]) : [];
    const wanted = nameOrAddress.toLowerCase().replace(/\.$/, '');
    const matching = (raw as unknown[])
      .filter((v): v is string => typeof v === 'string')
      .filter((v) => {
        const h = parseHost(v);
        return h !== undefined && (h.name === wanted || h.address.toLowerCase() === wanted);
      });
    if (matching.length === 0) {
      throw new DirectoryError('invalid-argument', `group ${g.name} has no host "${nameOrAddress}"`, {
        url: this.url,
      });
    }
    await this.modify(
      g.dn,
      [change('delete', ATTR.host, matching)],
      `removing host ${nameOrAddress} from ${g.name}`,
    );
    return matching.map((v) => parseHost(v) as GsraHost);
  }

  /**
   * Rotate a group key: a new random key with version+1 becomes current; the old one moves to
   * gsraGroupKeyPrevious and stays valid for graceSeconds. One modify, so readers see either the
   * old or the new state; the old version value is deleted explicitly, so two concurrent
   * rotations cannot both succeed.
   */
  async rotateKey(groupName: string, graceSeconds: number, now = new Date()): Promise<RotateResult> {
    if (!Number.isFinite(graceSeconds) || graceSeconds < 0) {
      throw new DirectoryError('invalid-argument', `grace period must be >= 0 seconds, got ${graceSeconds}`);
    }
    const g = await this.requireGroup(groupName);
    const [e] = await this.searchAll(
      g.dn,
      {
        scope: 'base',
        filter: '(objectClass=*)',
        attributes: [ATTR.key, ATTR.keyVersion],
        explicitBufferAttributes: [ATTR.key],
        paged: false,
      },
      `reading the key of ${g.name}`,
    );
    const oldKey = e?.[ATTR.key];
    const oldVersionStr = e?.[ATTR.keyVersion];
    const oldVersion = typeof oldVersionStr === 'string' ? Number(oldVersionStr) : undefined;
    const version = (oldVersion ?? 0) + 1;
    const changes: Change[] = [];
    let previous: RotateResult['previous'];
    if (
      Buffer.isBuffer(oldKey) &&
      oldKey.length > 0 &&
      oldVersion !== undefined &&
      typeof oldVersionStr === 'string'
    ) {
      // GeneralizedTime is stored to the second: round up so the grace period is never shortened.
      const notAfter = new Date(Math.ceil((now.getTime() + graceSeconds * 1000) / 1000) * 1000);
      previous = { version: oldVersion, notAfter };
      changes.push(
        change('replace', ATTR.prevKey, [oldKey]),
        change('replace', ATTR.prevKeyVersion, [String(oldVersion)]),
        change('replace', ATTR.prevKeyNotAfter, [toGeneralizedTime(notAfter)]),
        change('delete', ATTR.keyVersion, [oldVersionStr]),
        change('add', ATTR.keyVersion, [String(version)]),
      );
    } else {
      changes.push(change('replace', ATTR.keyVersion, [String(version)]));
    }
    changes.push(
      change('replace', ATTR.key, [randomBytes(KEY_BYTES)]),
      change('replace', ATTR.keyRotatedAt, [toGeneralizedTime(now)]),
    );
    try {
      await this.modify(g.dn, changes, `rotating the key of ${g.name}`);
    } catch (err) {
      if (err instanceof DirectoryProtocolError && err.resultCode === 16) {
        throw new DirectoryError(
          'ldap',
          `the key of ${g.name} was rotated by someone else at the same time; run rotate-key again if needed`,
          { url: this.url, cause: err },
        );
      }
      throw err;
    }
    const r: RotateResult = { group: g.name, version, rotatedAt: now };
    if (previous) r.previous = previous;
    return r;
  }

  /** Set a user's GSRA secret (default: 32 fresh random bytes). The secret is never returned. */
  async setUserSecret(userId: string, secret: Buffer = randomBytes(KEY_BYTES)): Promise<DirectoryUser> {
    if (secret.length < 16)
      throw new DirectoryError('invalid-argument', 'a user secret must be at least 16 bytes');
    const u = await this.findUser(userId);
    const [e] = await this.searchAll(
      u.dn,
      { scope: 'base', filter: '(objectClass=*)', attributes: ['objectClass'], paged: false },
      `reading ${u.dn}`,
    );
    const classes = (e ? (Array.isArray(e.objectClass) ? e.objectClass : [e.objectClass]) : []).map((c) =>
      String(c).toLowerCase(),
    );
    if (!classes.includes(ATTR.userClass.toLowerCase())) {
      await this.modify(
        u.dn,
        [change('add', 'objectClass', [ATTR.userClass])],
        `adding ${ATTR.userClass} to ${u.dn}`,
      );
    }
    await this.modify(u.dn, [change('replace', ATTR.userSecret, [secret])], `setting the secret of ${u.dn}`);
    return u;
  }

  /** Groups (with members) that list `host` (DNS name or address). */
  async whoCanReach(host: string): Promise<ReachEntry[]> {
    const wanted = host.toLowerCase().replace(/\.$/, '');
    const groups = (await this.allGroups()).filter((g) =>
      g.hosts.some((h) => h.name === wanted || h.address.toLowerCase() === wanted),
    );
    const out: ReachEntry[] = [];
    for (const g of groups) {
      const members = await Promise.all(g.members.map((dn) => this.findUser(dn).catch(() => ({ dn }))));
      out.push({
        group: g.name,
        groupDn: g.dn,
        hosts: g.hosts.filter((h) => h.name === wanted || h.address.toLowerCase() === wanted),
        members,
      });
    }
    return out;
  }

  /** The groups of a user and the hosts they open. */
  async whatCan(userId: string): Promise<WhatCanResult> {
    const user = await this.findUser(userId);
    const groups = await this.groupsOfUser(user.dn, { allowNone: true });
    return { user, groups: groups.map((g) => ({ name: g.name, dn: g.dn, hosts: g.hosts })) };
  }
}
