#include "mgl-internal.h"
