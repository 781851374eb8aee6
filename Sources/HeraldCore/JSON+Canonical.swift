extension JSON {
    /// The value with every object's members sorted by name (the last of duplicates kept): two texts
    /// that are equal as JSON, whatever their spacing and member order, have the same canonical `text`.
    public var canonical: JSON {
        switch self {
        case let .array(items): return .array(items.map(\.canonical))
        case let .object(members):
            var byName: [String: JSON] = [:]
            for (name, value) in members { byName[name] = value.canonical }
            return .object(byName.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }.map { ($0.key, $0.value) })
        default: return self
        }
    }
}
