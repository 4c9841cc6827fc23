// Package cli holds rctl's cobra commands: serve, dev, task, status,
// members, operator and snapshot.
//
// Conventions every command follows: flags can be set from RCTL_<FLAG>
// environment variables; -o table|json selects the output (json field
// names are snake_case, the same as on the wire); exit code 0 is success,
// 1 an error, 2 a usage mistake; an error is one line on stderr that says
// what to do next, with the stable error code in brackets.
package cli
