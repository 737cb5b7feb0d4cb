// The agent's data plane on Windows: the native engine behind WinDivert 2.2 (a WFP callout
// driver). Four handles mirror the Linux rules (native/src/backend/windivert_rules.rs): outbound
// to the VIN range, inbound from the gateway's reserved port range (and ICMP), inbound DNS
// answers, and a guard that drops VIN-bound packets below them all. WinDivert.dll and
// WinDivert64.sys are loaded from the agent's install folder (where node.exe is), never from
// the search path. Fail closed: see the guard in windivert_rules.rs and docs/windows.md.
import { dirname } from 'node:path';
import type { AgentConfig } from './config.ts';
import { EngineDataPlane } from './data-plane-engine.ts';

export interface WindowsDataPlaneOptions {
  vinRange: string;
  /** Probes and NAT keepalive (AgentConfig.roaming). */
  roaming?: AgentConfig['roaming'];
  ggr: string;
  /** The gateway's reserved port range. */
  ports: { first: number; last: number };
  /** DNS servers whose answers are examined; empty = any (as on Linux). */
  resolvers?: string[];
  /** Folder with WinDivert.dll / WinDivert64.sys; default: node.exe's folder (the install folder). */
  dir?: string;
}

export class WindowsDataPlane extends EngineDataPlane {
  readonly resolvers: string[];
  constructor(private o: WindowsDataPlaneOptions) {
    super(o.vinRange, o.roaming);
    this.resolvers = o.resolvers ?? [];
  }

  /** Throws a sentence the teleworker can act on when WinDivert cannot be opened. */
  start(): void {
    this.engine.startWinDivert({
      dir: this.o.dir ?? dirname(process.execPath),
      vinNet: this.o.vinRange,
      ggr: this.o.ggr,
      ports: [this.o.ports.first, this.o.ports.last],
      resolvers: this.o.resolvers ?? [],
    });
  }

  async close(): Promise<void> {
    this.engine.stop();
  }
}

/** The agent's data plane on Windows, configured from the agent's config. */
export function createDataPlane(c: AgentConfig): WindowsDataPlane {
  // Resolvers: the config's (Windows has no resolv.conf to read; empty = any, answers are still
  // checked against the queries the agent saw leave).
  return new WindowsDataPlane({
    vinRange: c.vinRange,
    roaming: c.roaming,
    ggr: c.gateway.address,
    ports: c.gateway.ports,
    resolvers: c.dns.resolvers,
  });
}
