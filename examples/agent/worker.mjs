// voicebroker's example LiveKit agent worker.
//
//   LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... \
//   LIVEKIT_AGENT_NAME=demo-bot node worker.mjs dev
//
// It registers under LIVEKIT_AGENT_NAME (default demo-bot, the development
// broker's demo agent), so LiveKit hands it exactly the jobs the broker's
// tokens dispatch to that name. Each job is logged as a JSON line (see
// log.mjs) and run by agent.mjs in a job process: join, greet with a tone,
// echo the caller's audio back.
import { ServerOptions, cli } from '@livekit/agents';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { emit, parseDispatch } from './log.mjs';

const agentName = process.env.LIVEKIT_AGENT_NAME || 'demo-bot';

// cpuLoad is the share of CPU time not idle since the previous call, the
// load a production worker (`start`) reports: LiveKit sends jobs only to
// workers under its target load (0.7), so a busy machine takes no more.
// In `dev` the worker reports 0 and takes every job, however busy the
// machine (a laptop, a CI runner).
let lastCPU = cpuTimes();
function cpuTimes() {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    idle += c.times.idle;
    total += c.times.idle + c.times.user + c.times.nice + c.times.sys + c.times.irq;
  }
  return { idle, total };
}
function cpuLoad() {
  const now = cpuTimes();
  const total = now.total - lastCPU.total;
  const load = total > 0 ? 1 - (now.idle - lastCPU.idle) / total : 0;
  lastCPU = now;
  return Math.min(Math.max(load, 0), 1);
}

let registered = false;

cli.runApp(
  new ServerOptions({
    agent: fileURLToPath(new URL('./agent.mjs', import.meta.url)),
    agentName,
    // The worker's health endpoint listens on loopback only.
    host: '127.0.0.1',
    // Every job request is logged by the worker process before a job
    // process takes it.
    requestFunc: async (req) => {
      const job = req.job;
      const dispatch = parseDispatch(job.metadata);
      emit('agent.job_request', {
        agentName: job.agentName,
        jobId: job.id,
        metadata: job.metadata,
        org: dispatch.org ?? null,
        agent: dispatch.agent ?? null,
        room: job.room?.name ?? '',
        roomMetadata: job.room?.metadata ?? '',
      });
      await req.accept('Example agent', `agent-${job.id}`);
    },
    // The load callback doubles as the sign that LiveKit registered the
    // worker: it runs every 2.5 s once the connection is up, and the worker
    // id is LiveKit's answer to the registration.
    loadFunc: async (worker) => {
      if (!registered && worker.id && worker.id !== 'unregistered') {
        registered = true;
        emit('agent.registered', { agentName, workerId: worker.id });
      }
      return process.env.LIVEKIT_DEV_MODE === '1' ? 0 : cpuLoad();
    },
  }),
);
