/** GPU test gating: GPU tests skip themselves without a usable CUDA device — unless AXN_REQUIRE_GPU=1
 * (`npm run test:gpu`), where a missing GPU is a failure, so a GPU run can't pass by skipping. */
import { backendInfo } from '../../lib/index.js';

const info = backendInfo();
export const hasCuda = info.cuda;
export const requireGpu = process.env.AXN_REQUIRE_GPU === '1';
if (requireGpu && !hasCuda) {
  throw new Error(`AXN_REQUIRE_GPU=1 but CUDA is not usable: ${info.cudaReason}`);
}
/** `describe.skipIf(!hasCuda)` reads as `describeGpu`. */
export const noCuda = !hasCuda;
