// The Landlock helper (unibus-netrules.c, built into dist/ by scripts/build.ts) and its probe.
export { landlockAbi, landlockNetSupported } from "./probe.ts";
