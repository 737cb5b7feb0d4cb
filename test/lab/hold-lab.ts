// Test helper: builds a lab, prints its namespaces as one JSON line, then waits to be killed.
// The lab tests kill it with SIGTERM, SIGINT or SIGKILL and check that nothing is left behind.
import { Lab } from './lab.ts';

const lab = await Lab.create();
const http = await import('./services.ts').then((s) => s.startHttp(lab, 'in1'));
console.log(JSON.stringify({ namespaces: lab.namespaces, httpPid: http.proc.child.pid }));
setInterval(() => {}, 1000);
