import { announcerCompliance } from './compliance.js';
import { FakeAnnouncer } from './fake.js';

announcerCompliance('FakeAnnouncer', () => Promise.resolve({ announcer: new FakeAnnouncer(), neighbors: ['10.255.0.2', '10.255.0.3'], cleanup: () => Promise.resolve() }));
