/** Files the user picked or dropped, each with its path inside what was picked (folders kept). */
export interface PickedFile {
  file: File;
  /** `/`-separated: `photos/2026/a.jpg` for a dropped or picked folder `photos`. */
  path: string;
}

/** Files one drop or pick may hold. */
export const maxPickedFiles = 100_000;

export class TooManyFilesError extends Error {
  override name = 'TooManyFilesError';
}

/** `<input type=file multiple>` (names) or `<input type=file webkitdirectory>` (paths inside the folder). */
export function fromInput(input: HTMLInputElement): PickedFile[] {
  const files = [...(input.files ?? [])];
  if (files.length > maxPickedFiles) throw new TooManyFilesError(`More than ${maxPickedFiles.toLocaleString()} files: upload the folder in parts.`);
  return files.map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

/**
 * A drop: files and whole folders (walked through the entries API). The entries are taken synchronously,
 * while the drop event lasts; the walk reads each folder in the batches the browser hands out.
 */
export function fromDrop(data: DataTransfer): Promise<PickedFile[]> {
  const entries = [...data.items].map((item) => (item.kind === 'file' ? item.webkitGetAsEntry() : null)).filter((e): e is FileSystemEntry => e !== null);
  if (entries.length === 0) return Promise.resolve([...data.files].map((file) => ({ file, path: file.name })));
  return walk(entries);
}

async function walk(roots: FileSystemEntry[]): Promise<PickedFile[]> {
  const out: PickedFile[] = [];
  const stack: { entry: FileSystemEntry; path: string }[] = roots.map((entry) => ({ entry, path: entry.name }));
  while (stack.length > 0) {
    const { entry, path } = stack.pop()!;
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
      out.push({ file, path });
      if (out.length > maxPickedFiles) throw new TooManyFilesError(`More than ${maxPickedFiles.toLocaleString()} files: upload the folder in parts.`);
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) stack.push({ entry: child, path: `${path}/${child.name}` });
      }
    }
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
