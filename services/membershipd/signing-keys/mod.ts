export { accountHandlers } from "./actions.ts";
export { SigningKeys, type SigningKeysDeps, type HolderView } from "./rotation.ts";
