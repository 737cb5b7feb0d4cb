// `gsra-agent login`: bind to LDAP over TLS as the user, read the user's GSRA groups (with the
// group keys the directory lets members read) and the per-user secret, and store them.
import type { Logger } from '@gsra/common';
import { DirectoryClient, NotInAnyGroupError } from '@gsra/ldap';
import type { AgentConfig } from './config.ts';
import { saveCredentials, type Credentials } from './credentials.ts';

export function directoryFor(config: AgentConfig, logger?: Logger): DirectoryClient {
  return new DirectoryClient({
    url: config.ldap.url,
    caFile: config.ldap.caFile,
    startTls: config.ldap.startTls,
    baseDn: config.ldap.baseDn,
    flavor: config.ldap.flavor,
    upnSuffix: config.ldap.upnSuffix,
    connectTimeoutMs: config.ldap.connectTimeoutMs,
    timeoutMs: config.ldap.timeoutMs,
    logger,
  });
}

/** Log in and store the credentials; throws the directory's typed errors (bad password, TLS, unreachable…). */
export async function login(
  config: AgentConfig,
  user: string,
  password: string,
  logger?: Logger,
): Promise<Credentials> {
  const client = directoryFor(config, logger);
  try {
    const me = await client.bindUser(user, password);
    const groups = await client.groupsOfUser(me.dn);
    const usable = groups.filter((g) => g.keys.length > 0);
    if (usable.length === 0) throw new NotInAnyGroupError(client.url, me.dn);
    const secret = await client.userSecret(me.dn);
    // The gateway knows the user by the directory's own id (uid / sAMAccountName), whatever
    // form was typed (erin.wong + upnSuffix, CORP\ewong, a DN...): send that one.
    const canonical = me.uid ?? user;
    const creds: Credentials = {
      user: canonical,
      ...(canonical !== user ? { typed: user } : {}),
      dn: me.dn,
      secret,
      groups: usable.map((g) => ({
        name: g.name,
        keys: g.keys.map((k) => ({ version: k.version, key: k.key, notAfter: k.notAfter?.getTime() })),
        hosts: g.hosts.map((h) => ({ name: h.name.toLowerCase(), address: h.address })),
      })),
      fetchedAt: Date.now(),
    };
    saveCredentials(config.stateDir, creds);
    return creds;
  } finally {
    await client.close();
  }
}
