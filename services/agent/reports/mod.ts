// The node's events on their way to membershipd: a journal on disk, and the loop that sends it.
export { ReportJournal, parseJournal, DEFAULT_MAX_PENDING, type JournalState } from "./journal.ts";
export { Reporter, type ReporterOptions, type SendReport } from "./reporter.ts";
