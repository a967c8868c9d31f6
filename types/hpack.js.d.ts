declare module 'hpack.js' {
  namespace hpack {
    interface HeaderField {
      name: string;
      value: string;
      neverIndex: boolean;
    }
    interface Decompressor {
      write(chunk: Buffer): boolean;
      execute(): void;
      read(): HeaderField | null;
    }
  }
  const hpack: {
    decompressor: { create(options: { table: { size: number } }): hpack.Decompressor };
  };
  export = hpack;
}
