// The peer: a plain LiveKit token endpoint, as LiveKit's docs show it.
//   node server.mjs <port> <api key> <api secret>
// POST /token {"room","identity"} -> {"token"}
import http from 'node:http';
import { AccessToken } from 'livekit-server-sdk';

const [port, key, secret] = process.argv.slice(2);

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/token') {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', async () => {
    try {
      const { room = 'bench-room', identity = 'user-' + Math.random().toString(36).slice(2) } = JSON.parse(body || '{}');
      const at = new AccessToken(key, secret, { identity, ttl: '5m' });
      at.addGrant({ roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true });
      const token = await at.toJwt();
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ token }));
    } catch (e) {
      res.writeHead(400).end();
    }
  });
});
server.keepAliveTimeout = 65000;
server.listen(Number(port), '127.0.0.1');
