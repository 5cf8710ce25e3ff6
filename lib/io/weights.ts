/** Weight files by content, not by name: safetensors (ours, Hugging Face's) or a `torch.save`d state_dict
 * (a zip: .pth / .pt). */
import { looksLikeZip, parsePth } from './pth.js';
import { parseSafetensors, readFileNamed, type SafeFile } from './safetensors.js';

export type WeightsFormat = 'safetensors' | 'pytorch';

/** Reads a weights file: its tensors by name, its metadata (none for PyTorch checkpoints) and its format. */
export async function readWeights(file: string): Promise<SafeFile & { format: WeightsFormat }> {
  const buf = await readFileNamed(file);
  if (looksLikeZip(buf)) return { tensors: parsePth(buf, file), metadata: {}, format: 'pytorch' };
  return { ...parseSafetensors(buf, file), format: 'safetensors' };
}
