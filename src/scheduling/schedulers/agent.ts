/**
 * agent — Fulcrum's server-agent policy (Coyote Point Equalizer's "server agent"): the
 * eligible server reporting the lowest agent load (0 idle … 100 saturated) gets the flow;
 * -1 (unavailable) excludes a server; ties and servers that have not reported fall back to
 * weighted least connections. A server with no reading ranks after every server with one.
 */
import { eligible, overhead } from '../dest.js';
import type { Dest, FlowKey } from '../types.js';
import { ListScheduler } from './base.js';

export class AgentLoad extends ListScheduler {
  readonly name = 'agent';
  pick(_flow: FlowKey, _now: number): Dest | null {
    let best: Dest | null = null;
    let bestLoad = 0;
    let boh = 0;
    for (const d of this.dests) {
      if (!eligible(d) || d.agentLoad < 0) continue;
      const load = Number.isNaN(d.agentLoad) ? 101 : d.agentLoad;
      const doh = overhead(d);
      if (best === null || load < bestLoad || (load === bestLoad && boh * d.weight > doh * best.weight)) {
        best = d;
        bestLoad = load;
        boh = doh;
      }
    }
    return best;
  }
}
