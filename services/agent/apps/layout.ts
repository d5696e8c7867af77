// Where an app lives on the node: `<apps dir>/<app>/<version>/` its unpacked code (read-only to its
// services), `<apps dir>/<app>/<version>.sha256` the tarball it came from (written last: the code is
// whole), `<apps dir>/<app>/volumes/<volume>` its data (0700, its UID's), `<apps dir>/state.json`.
import { join } from "node:path";

export class AppsLayout {
  constructor(readonly dir: string) {}

  get state(): string {
    return join(this.dir, "state.json");
  }

  root(app: string): string {
    return join(this.dir, app);
  }

  code(app: string, version: string): string {
    return join(this.dir, app, version);
  }

  /** Present, and naming the manifest's SHA-256, once the code dir is whole. */
  marker(app: string, version: string): string {
    return join(this.dir, app, `${version}.sha256`);
  }

  volumes(app: string): string {
    return join(this.dir, app, "volumes");
  }

  volume(app: string, volume: string): string {
    return join(this.dir, app, "volumes", volume);
  }
}
