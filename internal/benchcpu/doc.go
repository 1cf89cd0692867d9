// Package benchcpu adds process CPU time per operation to benchmark results.
// On a busy machine wall time per operation mostly measures the wait for a
// core; CPU time still measures the work.
package benchcpu
