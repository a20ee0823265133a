import { Watch } from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import { SandboxError } from '../sandbox-driver';
import { LABEL } from './manifests';

/** Container states that do not mend by waiting: the sandbox fails with the reason. */
const FATAL_WAITING = new Set(['ImagePullBackOff', 'InvalidImageName', 'CrashLoopBackOff', 'CreateContainerConfigError', 'CreateContainerError']);
/**
 * A kubelet waits in CrashLoopBackOff from a container's second crash on; a sandbox whose executor
 * crashed once or twice (killed, say) comes back after the back-off. This many restarts is a loop.
 */
export const CRASH_LOOP_RESTARTS = 3;

export type PodVerdict = { ready: true; podIP: string } | { ready: false; failure: SandboxError | null };

/** What a pod's status says: ready (with its IP), failed for good (with the reason), or still on its way. */
export function podVerdict(pod: V1Pod): PodVerdict {
  const status = pod.status ?? {};
  if (pod.metadata?.deletionTimestamp) return { ready: false, failure: new SandboxError(`Pod ${pod.metadata.name} is being deleted`, 'Deleted') };
  const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return { ready: false, failure: new SandboxError(`Pod ${pod.metadata?.name} cannot be scheduled: ${scheduled.message ?? 'no node fits'}`, 'Unschedulable') };
  }
  for (const container of status.containerStatuses ?? []) {
    const waiting = container.state?.waiting;
    if (waiting?.reason === 'CrashLoopBackOff' && (container.restartCount ?? 0) < CRASH_LOOP_RESTARTS) continue;
    if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) {
      return { ready: false, failure: new SandboxError(`Executor container of pod ${pod.metadata?.name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`, waiting.reason) };
    }
  }
  if (status.phase === 'Failed' || status.phase === 'Succeeded') return { ready: false, failure: new SandboxError(`Pod ${pod.metadata?.name} ended (${status.phase})`, status.reason ?? status.phase) };
  const ready = status.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  return ready && status.podIP ? { ready: true, podIP: status.podIP } : { ready: false, failure: null };
}

/**
 * Waits, by a watch on the pod (from `resourceVersion`, the version it was created or last read at),
 * until it is ready — its IP — or fails for good, or `timeoutMs` passes. A watch the server ends
 * early is opened again from the last version seen; one whose version the server no longer keeps
 * (an ERROR event with 410 Expired) is opened without a version, which starts with the pod as it is.
 */
export function waitForPod(watch: Watch, namespace: string, name: string, resourceVersion: string, timeoutMs: number, closing: AbortSignal): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    let version = resourceVersion;
    let current: AbortController | undefined;
    const finish = (err: Error | null, podIP?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      closing.removeEventListener('abort', onClose);
      current?.abort();
      if (err) reject(err);
      else resolve(podIP as string);
    };
    const timer = setTimeout(() => finish(new SandboxError(`Pod ${name} was not ready within ${timeoutMs} ms`, 'ReadyTimeout')), timeoutMs);
    const onClose = () => finish(new SandboxError('The sandbox driver is closed'));
    closing.addEventListener('abort', onClose);
    const open = () => {
      watch
        .watch(
          `/api/v1/namespaces/${namespace}/pods`,
          { labelSelector: `${LABEL.slot}=${name}`, resourceVersion: version || undefined, allowWatchBookmarks: true },
          (phase, pod: V1Pod) => {
            if (pod?.metadata?.resourceVersion) version = pod.metadata.resourceVersion;
            if (phase === 'BOOKMARK') return;
            if (phase === 'DELETED') return finish(new SandboxError(`Pod ${name} was deleted while starting`, 'Deleted'));
            if (phase === 'ERROR') {
              if ((pod as unknown as { code?: number })?.code === 410) version = '';
              return;
            }
            const verdict = podVerdict(pod);
            if (verdict.ready) finish(null, verdict.podIP);
            else if (verdict.failure) finish(verdict.failure);
          },
          (err) => {
            if (settled) return;
            setTimeout(open, err ? 500 : 0);
          },
        )
        .then(
          (controller) => {
            current = controller;
            if (settled) controller.abort();
          },
          () => (settled ? undefined : setTimeout(open, 500)),
        );
    };
    open();
  });
}
