// How the Windows service host asks the agent to stop. Windows has no SIGTERM to send to a
// process, so gsra-service.exe keeps the write end of the agent's stdin and closes it on
// SERVICE_CONTROL_STOP; `gsra-agent run --service` turns the end of stdin into the SIGTERM the
// daemon already stops cleanly on (sessions released, WinDivert handles closed guard-last).
export function stopOnStdinEnd(input: NodeJS.ReadableStream = process.stdin): void {
  let done = false;
  const stop = () => {
    if (done) return;
    done = true;
    process.emit('SIGTERM', 'SIGTERM');
  };
  input.on('end', stop);
  input.on('close', stop);
  input.on('error', stop);
  input.on('data', () => {}); // nothing is read from it; flowing mode lets 'end' arrive
}
