def backend_name():
    return "portable"
