// @gsra/ldap: the GSRA directory client, admin operations, schema names and test fixtures.
export * from './errors.ts';
export * from './schema.ts';
export * from './connection.ts';
export * from './entries.ts';
export * from './client.ts';
export * from './admin.ts';
export * from './accounts.ts';
export * from './identity.ts';
