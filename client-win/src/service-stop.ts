// How the Windows service host asks the agent to stop. Windows has no SIGTERM to send to a
// process, so gsra-service.exe keeps the write end of the agent's stdin and closes it on
// SERVICE_CONTROL_STOP; `gsra-agent run --service` turns the end of stdin into the SIGTERM the
// daemon already stops cleanly on (sessions released, WinDivert handles closed guard-last).
// Returns the function that lets go of stdin again (so the process can exit once stopped).
export function stopOnStdinEnd(
  input: NodeJS.ReadableStream & { destroy?(): unknown } = process.stdin,
): () => void {
  let done = false;
  const stop = () => {
    if (done) return;
    done = true;
    process.emit('SIGTERM', 'SIGTERM');
  };
  const ignore = () => {};
  input.on('end', stop);
  input.on('close', stop);
  input.on('error', stop);
  input.on('data', ignore); // nothing is read from it; flowing mode lets 'end' arrive
  return () => {
    done = true;
    input.off('end', stop);
    input.off('close', stop);
    input.off('error', stop);
    input.off('data', ignore);
    input.destroy?.();
  };
}
