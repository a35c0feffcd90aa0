/* storage on the simulated back-end of io/: the same tests as test_storage.c. */
#define TU_SIM 1
#include "test_storage.c"
