/**
 * Starting and stopping the loop's two HTTP listeners (observability/http.ts on a TCP port,
 * controller/view-socket.ts on a Unix socket) the same way.
 */
import type http from 'node:http';

/** Resolves once listening; a listen error (address in use, no permission) rejects. */
export function listenOn(server: http.Server, target: { port: number; host: string } | { path: string }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(target, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops listening and ends every connection (an asker mid-answer included): resolves when closed. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
