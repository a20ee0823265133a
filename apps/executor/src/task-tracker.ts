import { TaskItem, TaskItemSchema, TaskTrackerAction, taskTrackerObservation, TaskTrackerObservation } from '@berth/contracts/executor';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SerialQueue } from './errors';

const STATUS_ICONS: Record<string, string> = { todo: '⏳', in_progress: '🔄', done: '✅' };

/** The SDK's `_format_task_list`. */
export function formatTaskList(tasks: TaskItem[]): string {
  if (tasks.length === 0) return 'No tasks in the list.';
  let content = '# Task List\n\n';
  tasks.forEach((task, i) => {
    content += `${i + 1}. ${STATUS_ICONS[task.status] ?? '⏳'} ${task.title}\n`;
    if (task.notes) content += `   ${task.notes}\n`;
    content += '\n';
  });
  return content.trim();
}

/**
 * A conversation's `task_tracker`: the task list lives in a JSON file (`<root>/.berth/tasks/<id>.json`),
 * so it outlives the executor.
 */
export class TaskTracker {
  private readonly queue = new SerialQueue();

  constructor(private readonly file: string) {}

  execute(action: TaskTrackerAction): Promise<TaskTrackerObservation> {
    return this.queue.run(async () => {
      if (action.command === 'plan') {
        try {
          await this.save(action.task_list);
        } catch (err) {
          return taskTrackerObservation(`The task list could not be saved: ${(err as Error).message}`, { command: 'plan', is_error: true });
        }
        return taskTrackerObservation(`Task list has been updated with ${action.task_list.length} item(s).`, { command: 'plan', task_list: action.task_list });
      }
      const tasks = await this.load();
      if (tasks.length === 0) return taskTrackerObservation('No task list found. Use the "plan" command to create one.', { command: 'view', task_list: [] });
      return taskTrackerObservation(formatTaskList(tasks), { command: 'view', task_list: tasks });
    });
  }

  /** The saved list; an absent or unreadable file is an empty list (as the SDK treats it). */
  private async load(): Promise<TaskItem[]> {
    try {
      const parsed = TaskItemSchema.array().safeParse(JSON.parse(await readFile(this.file, 'utf8')));
      return parsed.success ? parsed.data : [];
    } catch {
      return [];
    }
  }

  private async save(tasks: TaskItem[]): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${randomBytes(6).toString('hex')}.tmp`;
    const json = JSON.stringify(tasks.map((t) => ({ title: t.title, notes: t.notes, status: t.status })), null, 2);
    await writeFile(tmp, json, { mode: 0o600 });
    await rename(tmp, this.file);
  }
}
