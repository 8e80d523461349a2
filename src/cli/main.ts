#!/usr/bin/env node
import { main } from './run.js';

// serve and dev resolve once a signal has stopped the server; the other commands when done.
process.exitCode = await main(process.argv.slice(2));
