export * from './fernet';
export * from './hashing';
export * from './secret-vault';
export * from './crypto.module';
