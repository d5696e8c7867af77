import { runMain } from "./main.ts";
void runMain(process.argv.slice(2));
