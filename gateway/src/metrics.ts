// What the gateway counts, in Prometheus form (prom-client). One registry per daemon instance.
import { syncCounter } from '@gsra/native';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly decisions = new Counter({
    name: 'gsra_gateway_decisions_total',
    help: 'Access decisions, by decision and reason',
    labelNames: ['decision', 'reason'],
    registers: [this.registry],
  });
  readonly controlMessages = new Counter({
    name: 'gsra_gateway_control_messages_total',
    help: 'Control messages received, by type',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly controlRejected = new Counter({
    name: 'gsra_gateway_control_rejected_total',
    help: 'Control messages refused before any state was touched, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly sessions = new Gauge({
    name: 'gsra_gateway_sessions',
    help: 'Live sessions',
    registers: [this.registry],
  });
  readonly reservations = new Gauge({
    name: 'gsra_gateway_reservations',
    help: 'Reserved ports on the public address (bound or not)',
    registers: [this.registry],
  });
  readonly flows = new Gauge({
    name: 'gsra_gateway_flows',
    help: 'Bound flows in the engine',
    registers: [this.registry],
  });
  /** The engine's refused packets by reason; the daemon sets it when it has a data plane. */
  dropSource: () => Record<string, number> | undefined = () => undefined;
  readonly droppedPackets: Counter<'reason'>;
  readonly engine = new Counter({
    name: 'gsra_gateway_engine_events_total',
    help: 'Events the packet engine reported (not packets: verify-failed events are rate-limited), by kind',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly dnsAnswers = new Counter({
    name: 'gsra_gateway_dns_answers_total',
    help: 'DNS answers sent, by rcode',
    labelNames: ['rcode'],
    registers: [this.registry],
  });
  readonly policyAge = new Gauge({
    name: 'gsra_gateway_policy_age_seconds',
    help: 'Age of the LDAP policy snapshot',
    registers: [this.registry],
  });

  readonly unknownUserIds = new Gauge({
    name: 'gsra_gateway_unknown_user_ids',
    help: 'Distinct user ids unknown to the directory seen recently (bounded memory; a flood shows here)',
    registers: [this.registry],
  });

  readonly limitRefusals = new Counter({
    name: 'gsra_gateway_limit_refusals_total',
    help: 'Requests refused by a limit that protects the gateway (per-user, per-source, per-session ports; no free port; ports cooling toward an IN)',
    labelNames: ['limit'],
    registers: [this.registry],
  });
  readonly portsCooling = new Gauge({
    name: 'gsra_gateway_ports_cooling',
    help: 'Free TCP ports not yet handed out toward the IN whose server may still hold TIME_WAIT for them',
    registers: [this.registry],
  });
  readonly stateWrites = new Counter({
    name: 'gsra_gateway_state_writes_total',
    help: 'Batches written to the state store (sessions and reservations that survive a restart)',
    registers: [this.registry],
  });
  readonly stateBytes = new Gauge({
    name: 'gsra_gateway_state_bytes',
    help: 'Size of the state store on disk',
    registers: [this.registry],
  });

  constructor() {
    const source = () => this.dropSource();
    this.droppedPackets = new Counter({
      name: 'gsra_gateway_dropped_packets_total',
      help: 'Packets the packet engine refused, by reason (old-data: payloads of already acknowledged segments)',
      labelNames: ['reason'],
      registers: [this.registry],
      collect() {
        syncCounter(this, source());
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: 'gsra_gateway_' });
  }
}
