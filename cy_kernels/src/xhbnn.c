#include "xhbnn.h"
