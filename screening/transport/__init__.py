"""Transport: boxes of sealed tubes from sampling points to labs."""
