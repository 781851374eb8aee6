// herald.mjs — herald.js as an ES module:
//   import { watchJob, watchJobs, submitJob, cancelJob } from '/herald/herald.mjs';
// The logic lives in herald.js (a plain script that defines globalThis.Herald);
// this file only re-exports it, so there is one implementation.
import './herald.js';

const Herald = globalThis.Herald;
export const {
  watchJob, watchJobs, watchMyJobs, submitJob, cancelJob, getJob, getLog, listJobs, isTerminal, HeraldError, MAX_IDS,
} = Herald;
export default Herald;
