/**
 * The server's per-request log lines: one per request, written when the
 * answer has gone out — method, path (no query), status, time taken and the
 * request id, like an access log. Fastify's own default is two lines, one on
 * arrival and one on completion; here the arrival line is kept for `debug`,
 * where following a request that never completes is the point. Successful
 * health, readiness and metrics probes (a load balancer's every few seconds)
 * log at `debug` too, so `info` shows what users and clients did.
 */
import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

const PROBE_PATH = /^\/(?:healthz|readyz|metrics)(?:\?|$)/;

export class RequestLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const line = { req: request, res: reply, responseTime: reply.elapsedTime };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else if (reply.statusCode < 400 && PROBE_PATH.test(request.url)) reply.log.debug(line, 'request completed');
    else reply.log.info(line, 'request completed');
  }
}
