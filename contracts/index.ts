export * from './errors';
export * from './names';
export * from './preferences';
export * from './spec';
export * from './transfers';
export * from './keys';
export * from './fallback';
export * from './objects';
