/**
 * An error the HTTP layer answers as `{"detail": …}` with this status (a bad request, not a tool
 * failure). `detail` is a message, or a FastAPI-style list of validation issues (422).
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string | readonly unknown[],
  ) {
    super(typeof detail === 'string' ? detail : JSON.stringify(detail));
    this.name = 'HttpError';
  }
}

/** A tool failure the agent should read: becomes an observation with `is_error: true`. */
export class ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToolError';
  }
}

/** Serializes async work: each task starts when the previous one has settled. */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
