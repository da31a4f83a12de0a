/** node-gyp-build 4.8 (it ships no types): the part src/io/binding.ts uses. */
declare module 'node-gyp-build' {
  interface NodeGypBuild {
    /** Loads the addon for the package in `dir`. */
    (dir: string): unknown;
    /** The addon file it would load: build/Release, build/Debug, then prebuilds/<platform>-<arch>/; throws when none fits. */
    resolve(dir: string): string;
  }
  const load: NodeGypBuild;
  export = load;
}
