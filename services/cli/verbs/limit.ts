// --limit N of the list verbs: membershipd's default page when it is not given.
export const LIMIT_FLAG = { limit: { type: "string" } } as const;

export function limitArg(text: string | undefined): { limit?: number } {
  return text ? { limit: Number(text) } : {};
}
