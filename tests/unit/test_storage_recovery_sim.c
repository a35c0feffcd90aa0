/* storage recovery on the simulated back-end of io/: the same tests as test_storage_recovery.c. */
#define TU_SIM 1
#include "test_storage_recovery.c"
