/**
 * The string and number formats the Container schema uses, as one CommonJS module: the runtime
 * compiler adds them to ajv, and the validator precompiled at build time requires this file.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS module, required by generated code
import formats = require('ajv-formats/dist/formats');

const isInteger = (n: number): boolean => Number.isInteger(n);

export = {
  ...formats.fullFormats,
  int64: { type: 'number' as const, validate: isInteger },
  int32: { type: 'number' as const, validate: isInteger },
};
