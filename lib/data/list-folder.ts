/** The listing of an image folder (root/<class>/…/<image>), shared by ImageFolder and `alexnet pack`.
 * (Placeholder over ImageFolder's own listing until the listing moves here.) */
import { ImageFolder } from './image-folder.js';

export interface FolderListing {
  root: string;
  classes: string[];
  /** Absolute paths, classes in order, each class's files sorted. */
  files: string[];
  labels: Int32Array;
  problems: { path: string; reason: string }[];
}

export async function listImageFolder(
  root: string,
  opts: { extensions: readonly string[]; allowEmptyClasses?: boolean; limit?: number },
): Promise<FolderListing> {
  const f = await ImageFolder.open(root, { extensions: opts.extensions, allowEmptyClasses: opts.allowEmptyClasses, limit: opts.limit });
  return { root: f.root, classes: [...f.classes], files: [...f.files], labels: f.labels, problems: [] };
}
