import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import yaml from 'js-yaml';
import { escapeOutput, MAX_ERROR_CHARS, terminalLines, terminalText } from '../../src/util/terminal-text.js';
import { TerminalSafeStream } from '../../src/util/terminal-stream.js';
import { createLogger } from '../../src/observability/logger.js';
import { table } from '../../src/cli/table.js';
import { formatProblem } from '../../src/cli/problems.js';
import { platformDigest } from '../../src/images/skopeo.js';

/** What terminals act on: C0 controls, DEL, C1 controls. */
// eslint-disable-next-line no-control-regex -- what the test looks for
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// eslint-disable-next-line no-control-regex -- what the test looks for
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;
/** Clear screen, OSC 52 (write "hi" to the clipboard), window title, C1 CSI, DEL, NUL, CR. */
const HOSTILE = 'a\x1b[2J\x1b[H\x1b]52;c;aGk=\x07\x1b]0;owned\x1b\\\u009b31m\x7f\x00\rb';

function capture(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(Buffer.from(c));
      cb();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('terminal text (untrusted strings printed safely)', () => {
  it('escapes every C0, DEL and C1 control and bidi override in a field, newlines included', () => {
    const out = terminalText(`${HOSTILE}\nline2\t\u202eevil`);
    assert.doesNotMatch(out, CONTROL);
    assert.equal(out, 'a\\x1b[2J\\x1b[H\\x1b]52;c;aGk=\\a\\x1b]0;owned\\x1b\\\\u009b31m\\u007f\\x00\\rb\\nline2\\t\\u202eevil');
    assert.equal(terminalText('plain text: ünïcödé ✓ 𝄞'), 'plain text: ünïcödé ✓ 𝄞');
  });

  it('keeps newlines and tabs in blocks of lines', () => {
    assert.equal(terminalLines('one\x1b[2J\n\ttwo'), 'one\\x1b[2J\n\ttwo');
  });

  it('bounds the text with a marker saying how much was cut, never splitting an escape or a surrogate pair', () => {
    const big = 'x'.repeat(441_000);
    const out = terminalText(big, 100);
    assert.equal(out, `${'x'.repeat(100)}…[440900 more characters cut]`);
    const esc = terminalText('\x1b'.repeat(50), 10);
    assert.equal(esc, `${'\\x1b'.repeat(2)}…[48 more characters cut]`);
    const pairs = terminalText('𝄞'.repeat(10), 5);
    assert.equal(pairs, '𝄞𝄞…[16 more characters cut]'); // counted in UTF-16 units, as String.length
    assert.equal(terminalLines('y'.repeat(MAX_ERROR_CHARS + 5)).length, MAX_ERROR_CHARS + '…[5 more characters cut]'.length);
  });

  it('whole output: JSON and YAML of hostile strings stay the same data, with no raw control', async () => {
    const data = { probe: HOSTILE, user: 'root\u009b\u0085', env: ['A=\x1b]52;c;eA==\x07'] };
    for (const text of [JSON.stringify(data, null, 2), yaml.dump(data)]) {
      const out = escapeOutput(text);
      assert.doesNotMatch(out, CONTROL_BUT_NEWLINE);
    }
    assert.deepEqual(JSON.parse(escapeOutput(JSON.stringify(data, null, 2))), data);
    assert.deepEqual(yaml.load(escapeOutput(yaml.dump(data))), data);
    // Through the stream the CLI writes to, a multi-byte character split across chunks survives.
    const c = capture();
    const s = new TerminalSafeStream(c.stream);
    const bytes = Buffer.from(`é${HOSTILE}`);
    s.write(bytes.subarray(0, 1));
    s.write(bytes.subarray(1));
    await new Promise<void>((resolve) => s.end(resolve));
    assert.equal(c.text(), escapeOutput(`é${HOSTILE}`));
    assert.doesNotMatch(c.text(), CONTROL);
  });

  it("acetate's own log lines (JSON and text) carry no raw control and are bounded", () => {
    for (const json of [true, false]) {
      const c = capture();
      const log = createLogger({ json, stream: c.stream });
      log.warn(`probe of web said ${HOSTILE}`, { error: HOSTILE, nested: { user: 'u\u009b' }, big: 'z'.repeat(100_000) });
      const text = c.text();
      assert.doesNotMatch(text.replace(/\n$/, ''), CONTROL, `${json ? 'json' : 'text'}: ${JSON.stringify(text)}`);
      assert.ok(text.length < 10_000, `${text.length} characters logged`);
      if (json) assert.equal(JSON.parse(text).nested.user, 'u\u009b');
    }
  });

  it('table cells, manifest problems and index errors are one escaped, bounded line', () => {
    const t = table(['NAME', 'STATUS'], [['web', `NotReady: ${HOSTILE}\nforged   Ready`]]);
    assert.equal(t.split('\n').length, 3);
    assert.doesNotMatch(t, CONTROL_BUT_NEWLINE);
    const p = formatProblem({
      kind: 'invalid',
      origin: `/m/\x1b]0;t\x07.yaml`,
      line: 3,
      field: 'spec.image',
      message: `pull: ${'q'.repeat(500_000)}`,
      keys: [],
    });
    assert.doesNotMatch(p, CONTROL);
    assert.ok(p.length < MAX_ERROR_CHARS + 200);
    const index = JSON.stringify({
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: Array.from({ length: 17_000 }, (_, i) => ({ digest: `sha256:${'0'.repeat(64)}`, platform: { os: 'plan9', architecture: `arch${i}` } })),
    });
    assert.throws(
      () => platformDigest(index, 'r/x'),
      (err: Error) => err.message.length < 1000 && /and 16980 more/.test(err.message),
    );
  });
});
