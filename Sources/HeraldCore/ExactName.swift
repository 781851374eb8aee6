extension Dictionary where Key == String {
    /// The value whose key is `name` byte for byte.
    ///
    /// String equality is canonical (a KELVIN SIGN equals a K). A kind or param name ends up in file
    /// names, slot locks and environment variables, so it must be the configured bytes, not an equivalent spelling.
    public subscript(exactly name: String) -> Value? {
        guard let index = index(forKey: name), self[index].key.utf8.elementsEqual(name.utf8) else { return nil }
        return self[index].value
    }
}
