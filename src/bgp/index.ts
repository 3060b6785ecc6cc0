export * from './types.js';
export { decideRoutes, diffRoutes, formatCommunity, neighborName, routeOf, sameRoute, speakerConfigOf, type AnnounceInputs, type RouteDecision, type RouteDelta } from './plan.js';
export { BgpSpeaker, type BgpEvent, type BgpRouteStatus, type BgpSpeakerOptions, type BgpStatus } from './speaker.js';
export { FakeAnnouncer } from './fake.js';
