/** The trusted release keys' file name, in an agent's data dir and in the operator's (release publish). */
export const RELEASE_KEYS_FILE = "release-keys.pub";
