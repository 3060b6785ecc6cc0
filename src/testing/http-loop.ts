/**
 * A bounded HTTP request loop for a lab client: `count` requests, each on a new connection,
 * `gapMs` apart, plus one keep-alive connection asking every `gapMs` for the same period —
 * so a test sees both new flows and an established one across a change. Prints one JSON
 * line: {ok, failed, by: {name: n} (new connections), kept: {name: n} (the keep-alive one),
 * errors: [...]}, by the names the servers answer with.
 */
export function httpLoopScript(url: string, count: number, gapMs: number): string {
  return `
const http = require('http');
const u = new URL(${JSON.stringify(url)});
let ok = 0, failed = 0; const by = {}; const kept = {}; const errors = [];
const ka = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(agent) {
  return new Promise((resolve) => {
    const req = http.get({ host: u.hostname, port: u.port || 80, path: '/', agent, timeout: 3000, headers: agent ? {} : { connection: 'close' } }, (res) => {
      let body = ''; res.on('data', (d) => body += d); res.on('end', () => {
        if (res.statusCode === 200) { ok++; const n = body.split(' ')[0]; const t = agent ? kept : by; t[n] = (t[n] || 0) + 1; } else { failed++; errors.push('status ' + res.statusCode); }
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { failed++; if (errors.length < 10) errors.push(e.message); resolve(); });
  });
}
(async () => {
  let stop = false;
  const keep = (async () => { while (!stop) { await get(ka); await new Promise((r) => setTimeout(r, ${gapMs})); } })();
  for (let i = 0; i < ${count}; i++) { await get(false); await new Promise((r) => setTimeout(r, ${gapMs})); }
  stop = true; await keep; ka.destroy();
  console.log(JSON.stringify({ ok, failed, by, kept, errors }));
})();
`;
}
