/* storage/plog_reset_to on the simulated back-end of io/: the same tests as test_plog_reset.c,
 * plus the power cuts. */
#define TU_SIM 1
#include "test_plog_reset.c"
