import type { Command } from '../command.js';
import { validateCommand } from './validate.js';
import { planCommand } from './plan.js';
import { applyCommand } from './apply.js';
import { getCommand } from './get.js';
import { logsCommand } from './logs.js';
import { templateCommand } from './template.js';

export const COMMANDS: Command[] = [validateCommand, planCommand, applyCommand, getCommand, logsCommand, templateCommand];
