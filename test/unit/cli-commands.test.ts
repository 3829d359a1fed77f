/** The command table loads each command only when it runs; what it shows in the help must be the command's own. */
import assert from 'node:assert/strict';
import { COMMANDS } from '../../src/cli/commands/index.js';

describe('CLI command table', () => {
  it("each entry loads its command, with the same name and summary as the command's own", async () => {
    assert.equal(new Set(COMMANDS.map((c) => c.name)).size, COMMANDS.length, 'names are unique');
    for (const entry of COMMANDS) {
      const cmd = await entry.load();
      assert.equal(cmd.name, entry.name);
      assert.equal(entry.summary, cmd.summary, `summary of ${entry.name}`);
      assert.match(cmd.usage, new RegExp(`acetate ${entry.name}\\b`), `usage of ${entry.name}`);
    }
  });
});
