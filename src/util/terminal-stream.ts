/**
 * The CLI's stdout and stderr (and acetate's own log), escaped for terminals as a last line of defence: whatever a
 * command prints (a table, `describe`, a plan, an error quoting a registry), no control
 * character but newline and tab reaches the terminal raw. Fields are escaped and bounded where
 * they are formatted (terminalText); this catches what a formatter forgot.
 *
 * JSON and YAML output stay the same data: JSON.stringify and js-yaml never leave a raw C0
 * control, and DEL/C1 become `\u00XX`, a JSON escape of the same character (js-yaml escapes
 * those itself). `acetate logs` and `exec` write the container's bytes to the raw streams.
 */
import { Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { escapeOutput } from './terminal-text.js';

export class TerminalSafeStream extends Writable {
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly target: NodeJS.WritableStream) {
    super({ decodeStrings: false });
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    // Handed on at once: the target (process.stdout) buffers, and the process waits for it.
    if (text) this.target.write(escapeOutput(text));
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    const rest = this.decoder.end();
    if (rest) this.target.write(escapeOutput(rest));
    done();
  }
}
