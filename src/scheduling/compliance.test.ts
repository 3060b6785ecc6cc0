import { describe } from 'node:test';
import { ALL_SCHEDULERS, createScheduler, FakeScheduler, mulberry32 } from './index.js';
import { schedulerCompliance } from './compliance.js';

for (const name of ALL_SCHEDULERS) {
  describe(`scheduler compliance: ${name}`, () => schedulerCompliance(() => createScheduler(name, { random: mulberry32(42) })));
}
describe('scheduler compliance: FakeScheduler', () => schedulerCompliance(() => new FakeScheduler(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', null])));
