#ifndef CURBSIDE_CSODIUM_SHIM_H
#define CURBSIDE_CSODIUM_SHIM_H
#include <sodium.h>
#endif
