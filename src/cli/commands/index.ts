import type { Command } from '../command.js';
import { validateCommand } from './validate.js';
import { planCommand } from './plan.js';
import { applyCommand } from './apply.js';
import { runCommand } from './run.js';
import { getCommand } from './get.js';
import { describeCommand } from './describe.js';
import { logsCommand } from './logs.js';
import { templateCommand } from './template.js';
import { execCommand } from './exec.js';
import { imageCommand } from './image.js';
import { shutdownCommand } from './shutdown.js';

export const COMMANDS: Command[] = [
  validateCommand,
  planCommand,
  applyCommand,
  runCommand,
  getCommand,
  describeCommand,
  logsCommand,
  execCommand,
  templateCommand,
  imageCommand,
  shutdownCommand,
];
