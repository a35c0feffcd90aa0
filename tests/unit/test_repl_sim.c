/* replication/repl on the simulated back-end of io/: the same tests as test_repl.c. */
#define TU_SIM 1
#include "test_repl.c"
