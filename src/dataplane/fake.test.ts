import { dataPlaneCompliance } from './compliance.js';
import { FakeDataPlane } from './fake.js';

let next = 20000;
dataPlaneCompliance('FakeDataPlane', () => Promise.resolve({
  plane: new FakeDataPlane(), address: '127.0.0.1', method: 'dr', freePort: () => Promise.resolve(next++),
}));
